"""What a party keeps on disk or in its database: private directories and files
(:mod:`vfl.store.files`), the job records (:mod:`vfl.store.jobs`), the model registry
(:mod:`vfl.store.models`) and the serving audit table (:mod:`vfl.store.audit`)."""
