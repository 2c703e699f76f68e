"""Domain rules: ids, clock, policy decisions that depend on the resource."""
