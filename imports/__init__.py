"""Generated cdk8s bindings (imports/regenerate.sh). Do not edit by hand."""
