"""Training: optimisers, schedules and (later) the engine that wires data, network and task."""
