"""Benchmarks (`make bench`): each module bench_<area>.py has main() that prints its figures."""
