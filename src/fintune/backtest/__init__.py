"""Backtest predictions against prices: point-in-time signals, vectorised engine, metrics, plots and report.

Never imports a model: it needs only :class:`fintune.records.Prediction` records and daily prices.
Modules: ``strategies`` (predictions -> scores, :class:`StrategyConfig`), ``engine`` (positions -> returns),
``metrics``, ``statistics`` (PSR, DSR, minimum track record), ``ledger`` (trials per project), ``baselines``
(random-signal simulations), ``costs`` (square-root impact, capacity), ``universe`` (point-in-time membership),
``cutoff`` (model pretraining cutoff vs the window), ``purged`` (purge / embargo, combinatorial purged CV),
``plots``, ``walkforward``, ``report`` (the ``fintune backtest`` pipeline).
"""
