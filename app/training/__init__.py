"""The recommendation engine's training pipeline, one module per step.

dataset (load from the database) -> preprocess (clean, weight, decay) -> models (fit) ->
evaluate (temporal holdout metrics) -> tuning (parameter search, model selection) ->
build / publish (lists to the cache), driven by pipeline under the worker's lock.
models, evaluate and tuning are pure compute: no database, no cache.
"""
