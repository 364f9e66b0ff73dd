"""One module per external system, each with its client, its Dagster resource and what its calls
cost; ``paid_call`` is the one path every billed call takes."""
