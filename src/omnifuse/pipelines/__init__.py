"""End-to-end jobs that compose the layers below (the demo)."""
