"""How flywheel's runs survive being killed: worker liveness, reaping dead runs and their pool
slots, a guarded executor, a run launcher the daemon's run monitoring can ask, and the
``flywheel doctor`` operations (docs/operations.md)."""
