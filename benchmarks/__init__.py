"""Scale benchmarks for the engine (issue #5): data generator, networkx baselines, runner.

``python benchmarks/run.py --help``; ``python benchmarks/generate.py --help``.
"""
