"""The services outside Dagster: building OHLC slices (ingest), gap healing and retention (maintenance), one
engine tick against the warehouse (engine_runner) and the operator views and commands (operator). They call the
core and the storage layer; the Dagster assets and the CLI are thin layers over them."""
