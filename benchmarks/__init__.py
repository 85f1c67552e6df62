"""Benchmarks behind `vlp bench`: each module measures one thing and returns a `BenchReport` (a table plus JSON).

Every comparison runs its variants alternately in one invocation (A B A B …), so drift in machine load hits
all of them alike, and reports medians over the repeats.
"""
