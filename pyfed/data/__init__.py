"""Data: in-memory data sets and client partitions."""
