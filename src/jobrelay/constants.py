"""Names and numbers every jobrelay service must agree on.

Component names are the same in every profile under `components/`, so swapping the broker or
the store is a YAML change that no app notices.
"""

from typing import Final

# Dapr component names (the `metadata.name` of the component files).
PUBSUB: Final = "pubsub"
STATESTORE: Final = "statestore"

# Topics. The dead-letter topic receives what the worker gave up on after the resiliency
# policy's retries, so a job can be marked failed instead of staying "queued" forever.
JOBS_TOPIC: Final = "jobs"
DEAD_LETTER_TOPIC: Final = "jobs-dead"

# State keys. The state component uses `keyPrefix: name`, so every app sees the same key space.
JOB_KEY_PREFIX: Final = "job:"

# Seconds a client is asked to wait before polling again. One second keeps a classify or embed
# job (tens of milliseconds on the local model) from feeling slow without flooding status.
RETRY_AFTER_SECONDS: Final = 1

# How long a worker's claim on a job holds before another delivery may take the job over
# (a worker that died mid-call never releases it). Shorter than the broker's redelivery
# timeout (components/pubsub.yaml: processingTimeout 300 s), so a redelivered message finds
# the dead claim expired and runs the job instead of acknowledging it away.
CLAIM_LEASE_SECONDS: Final = 240

# Terminal records expire from the state store after a day (state TTL), so the store does not
# grow without bound; a client has that long to collect a result.
RESULT_TTL_SECONDS: Final = 24 * 3600
