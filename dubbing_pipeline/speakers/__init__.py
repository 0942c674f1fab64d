"""Speaker clustering and cross-chunk speaker matching on embedding vectors."""
