"""Core of kubetune: spec, search space, strategies, the loop and the trial contract.

The core never imports kfp, kubernetes, minio or torch.
"""
