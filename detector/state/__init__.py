"""System state: threads, fds, containers and users, kept from /proc and the event stream."""
