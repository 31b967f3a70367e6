"""Names and numbers every jobrelay service must agree on.

Component names are the same in every profile under `components/`, so swapping the broker or
the store is a YAML change that no app notices.
"""

from typing import Final

# Dapr component names (the `metadata.name` of the component files).
PUBSUB: Final = "pubsub"
STATESTORE: Final = "statestore"
# What clients send and models answer (input text, parameters, results, uploads), kept apart
# from the job records in a store daprd encrypts (jobrelay/payloads.py).
PAYLOADS_STORE: Final = "payloads"
# The same broker as PUBSUB, but every subscribing sidecar gets its own consumer group, so
# every replica of status (live streams) and intake (Prefer: wait) sees every job event.
# Webhooks subscribe through PUBSUB instead: one delivery per event, whatever the replicas.
EVENTS_PUBSUB: Final = "events"

# Topics. The dead-letter topic receives what the worker gave up on after the resiliency
# policy's retries, so a job can be marked failed instead of staying "queued" forever.
JOBS_TOPIC: Final = "jobs"
DEAD_LETTER_TOPIC: Final = "jobs-dead"
# A job's record after each status change (JobEvent), for live streams, waits and webhooks.
JOB_EVENTS_TOPIC: Final = "job-events"

# State keys. The state component uses `keyPrefix: name`, so every app sees the same key space.
JOB_KEY_PREFIX: Final = "job:"
FILE_KEY_PREFIX: Final = "file:"
CONTENTS_KEY_PREFIX: Final = "contents:"
# The ids of dead-lettered jobs, for the admin endpoints (jobrelay/dead_letters.py); the
# newest this many are kept.
DEAD_LETTER_INDEX_KEY: Final = "dead-letters"
DEAD_LETTER_INDEX_SIZE: Final = 10_000
IDEMPOTENCY_KEY_PREFIX: Final = "idem:"
# A tenant's quota ledger (apps/intake/quotas.py): its recent submissions and waiting jobs.
QUOTA_KEY_PREFIX: Final = "quota:"

# Uploads are stored in chunks of this size: big enough that a 10 MiB file is ten writes,
# small enough to stay far below the sidecar's 4 MiB gRPC message limit and to bound the
# memory one upload holds at a time.
FILE_CHUNK_BYTES: Final = 1024 * 1024

# Seconds a client is asked to wait before polling again. One second keeps a classify or embed
# job (tens of milliseconds on the local model) from feeling slow without flooding status.
RETRY_AFTER_SECONDS: Final = 1

# How long a worker's claim on a job holds unless renewed. The running worker renews it every
# third of this while the model works; a dead worker's claim lapses, and the next delivery
# takes the job over. Shorter than the broker's redelivery timeout (the redis profile's
# processingTimeout is 300 s), so the redelivery after a crash finds the claim lapsed.
CLAIM_LEASE_SECONDS: Final = 240

# How long a second delivery of a running job is held (waiting for it to end, or for its
# lease to lapse) before it goes back to the broker. Under the broker's redelivery timeout,
# so a held copy is never itself redelivered while it waits.
DUPLICATE_HOLD_SECONDS: Final = 270

# Longest `Prefer: wait=N` honoured: past a minute a client is better off with the stream.
MAX_WAIT_SECONDS: Final = 60

# Idle live streams send a comment this often, so proxies do not cut them, and reread the
# record, so an event the broker lost still reaches the client.
STREAM_KEEPALIVE_SECONDS: Final = 15.0

# A queued job, its upload and its idempotency key live at most this long when the job has
# no deadline: long enough to outlast any sane backlog, short enough that a lost job's file
# does not sit in the store forever.
MAX_JOB_LIFETIME_SECONDS: Final = 7 * 24 * 3600
