"""Training: recipe configs, the loop on HF Accelerate, checkpoints and resume, distributed runs."""
