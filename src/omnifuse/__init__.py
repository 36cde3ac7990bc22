"""omnifuse: one library and command line for the whole life of a multimodal model.

Quick start::

    from omnifuse.models import DualEncoder
    model = DualEncoder.from_pretrained("runs/demo-work/demo/best")
    batch = model.processor({"text": ["a red circle"]})
    emb = model.encode("text", batch)   # (1, E), L2-normalised
"""

__version__ = "0.1.0"
