"""The data path's table stages, in the order a table goes through them.

- :mod:`.read`: a file (CSV/TSV, Parquet, JSON lines) or a DataFrame into a DataFrame, and the memory guard;
- :mod:`.schema`: the task the target implies and the kind of every other column;
- :mod:`.split`: the seeded train/valid/test split, and the table's fingerprint;
- :mod:`.preprocess`: statistics learned on the training rows, and any table turned into model inputs;
- :mod:`.quantile`: the quantile-to-normal scaling it uses;
- :mod:`.write`: prediction tables written atomically.

Nothing here imports the networks or the training loop.
"""
