"""Following artifacts: the follower, its schedule, compatibility checks, rollback, diffs."""
