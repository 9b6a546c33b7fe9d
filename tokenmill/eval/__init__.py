"""Zero-shot evaluation of trained checkpoints with EleutherAI's lm-evaluation-harness.

model.py   TokenmillLM: a checkpoint as the harness's model (log-likelihood, rolling
           log-likelihood, greedy generation), with the run's tokenizer
run.py     the tasks (the harness's, tasks/ and --include-path folders), simple_evaluate,
           the results JSON
cli.py     `tokenmill eval`
tasks/     bigscience-zero-shot.yaml (the paper's task group) and tokenmill_sample/ (three
           offline tasks on 24 paragraphs of the Python Language Reference)

Export to Hugging Face lives with the trainer (tokenmill/trainer/export.py).
"""
