"""scale-bridge benchmarks: the bridge against the physical limits of its job and against bare
baselines run side by side (``python -m bench``; results in docs/benchmarks.md).

Every figure is a median over several runs, and every comparison is a ratio against a baseline
measured in the same run, because the machines are shared and noisy. Nothing here is a test: no
thresholds fail the build; the targets are reported as met / missed.
"""
