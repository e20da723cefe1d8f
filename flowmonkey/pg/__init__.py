"""PostgreSQL plumbing shared by the projection and the processors' snapshot store:
the tables' migrations (:mod:`.schema`) and the schema-bound pool (:mod:`.pool`)."""
