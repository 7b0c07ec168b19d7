"""cdk8s constructs, one resource family per module, all built from a validated Config."""
