"""The node agent: registers the Node, runs its pods through a container runtime."""
