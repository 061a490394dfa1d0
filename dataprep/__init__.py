"""dataprep: prepare training data as Parquet shards and stream them into training.

Importing the package must stay cheap and must not need torch: only `dataprep.loader` and
`dataprep.train` import it.
"""

__version__ = "0.1.0"
