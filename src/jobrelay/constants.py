"""Names and numbers every jobrelay service must agree on.

Component names are the same in every profile under `components/`, so swapping the broker or
the store is a YAML change that no app notices.
"""

from typing import Final

# Dapr component names (the `metadata.name` of the component files).
PUBSUB: Final = "pubsub"
# Job records (with what clients sent and models answered), uploads, and the services' own
# bookkeeping (idempotency keys, quota ledgers, shared limits); daprd encrypts it.
STATESTORE: Final = "statestore"
# The same broker as PUBSUB, but every subscribing sidecar gets its own consumer group, so
# every replica of status (live streams) and intake (Prefer: wait) sees every job event.
EVENTS_PUBSUB: Final = "events"

# Topics. The dead-letter topic receives what the worker gave up on after the resiliency
# policy's retries, so a job can be marked failed instead of staying "queued" forever.
# Jobs go to one topic per lane (jobrelay.lanes: `jobs-{priority}-{shard}`); `jobs` is the one
# topic of the jobs published before lanes, still drained by the worker.
JOBS_TOPIC: Final = "jobs"
DEAD_LETTER_TOPIC: Final = "jobs-dead"
# A status change of a job someone waits on (JobEvent), for live streams and Prefer: wait,
# through EVENTS_PUBSUB: published only for jobs with a watcher (jobrelay.events).
JOB_EVENTS_TOPIC: Final = "job-events"
# A status change a job's webhook asked for, through PUBSUB: one delivery across the
# status replicas (apps/status/webhooks.py).
WEBHOOK_EVENTS_TOPIC: Final = "job-webhooks"
# OpenAI-style batches (apps/intake/batches): intake's own work list, through PUBSUB (one
# consumer group: each step is done by one intake replica, again after a crash), and the
# terminal status of every job made from a batch line, which intake counts.
BATCHES_TOPIC: Final = "batches"
BATCH_EVENTS_TOPIC: Final = "batch-events"

# The newest this many dead-lettered jobs of a tenant are listed (jobrelay.dead_letters).
DEAD_LETTER_INDEX_SIZE: Final = 1000

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

# How long a worker waits for the record of a job whose message came first, counted from the
# message's `sent_at`. Intake publishes a job's message, then stores its record: the record
# normally follows within milliseconds, and intake never stores it later than
# STORE_WINDOW_SECONDS after publishing. Past this grace the worker fences the job's key
# (jobrelay.store), so a record that comes later still can never be stored. The margin over
# the window covers clock skew between intake's host and the worker's.
ARRIVAL_GRACE_SECONDS: Final = 30.0
STORE_WINDOW_SECONDS: Final = 5.0
# How long a fence outlives the job it stopped: far past any store of its record.
FENCE_TTL_SECONDS: Final = 3600

# Idle live streams send a comment this often, so proxies do not cut them, and reread the
# record, so an event the broker lost still reaches the client.
STREAM_KEEPALIVE_SECONDS: Final = 15.0

# A queued job, its upload and its idempotency key live at most this long when the job has
# no deadline: long enough to outlast any sane backlog, short enough that a lost job's file
# does not sit in the store forever.
MAX_JOB_LIFETIME_SECONDS: Final = 7 * 24 * 3600
