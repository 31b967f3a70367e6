"""The designs jobrelay is compared with, doing the same job (an `embed` on the model
double): the synchronous design, and FastAPI + Celery + Redis with the same submit-and-poll
API. Benchmark baselines only; nothing in jobrelay imports them."""
