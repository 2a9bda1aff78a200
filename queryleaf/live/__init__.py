"""Live queries over change streams (docs/streaming.md): ``EMIT CHANGES`` push queries and their
client-side windowed aggregation."""
