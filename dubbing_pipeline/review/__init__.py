"""Review and edit: a person's corrections, viewers' feedback, the review page and deleting a dub."""
