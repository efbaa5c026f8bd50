"""The method on verl (Ray): parquet export, a reward function and manager, the curriculum as a Ray actor.

verl cannot share an environment with the `train` extra (it pins its own transformers and TRL), so this
package imports verl and Ray lazily and only the `verl` extra installs them (`make verl-env`).
"""
