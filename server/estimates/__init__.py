"""Wait estimates (issue 15): what an estimator is (``base``), what it learns from the office's
events (``history``), the default estimator (``honest``) and the published predictors it is
measured against (``baselines``). docs/estimates.md has the method and the figures."""
