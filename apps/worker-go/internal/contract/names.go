package contract

import "fmt"

// Names every jobrelay service must agree on: the same as src/jobrelay/constants.py and
// src/jobrelay/keys.py, since workers in both languages share one key space and one topic.
const (
	// PubSub carries `jobs`, `jobs-dead` and `job-webhooks` (one consumer group per app id).
	PubSub = "pubsub"
	// EventsPubSub carries `job-events`: a consumer group per sidecar, for watchers.
	EventsPubSub = "events"
	// StateStore holds job records and the services' bookkeeping; daprd encrypts it.
	StateStore = "statestore"

	JobsTopic          = "jobs"
	DeadLetterTopic    = "jobs-dead"
	JobEventsTopic     = "job-events"
	WebhookEventsTopic = "job-webhooks"

	// DeadLetterIndexSize bounds each tenant's list of dead-lettered jobs.
	DeadLetterIndexSize = 1000
	// FenceTTLSeconds: a fence outlives any store of the record it stopped.
	FenceTTLSeconds = 3600
	// MaxJobLifetimeSeconds: how long a queued job without a deadline may live.
	MaxJobLifetimeSeconds = 7 * 24 * 3600
)

// LaneTopics is every lane topic (src/jobrelay/lanes.py): `jobs-{priority}-{shard}` for
// each priority and tenant shard. The worker subscribes to all of them and to JobsTopic,
// the one topic of the jobs published before lanes.
func LaneTopics(shards int) []string {
	topics := make([]string, 0, len(Priorities)*shards)
	for _, p := range Priorities {
		for s := range shards {
			topics = append(topics, fmt.Sprintf("%s-%s-%d", JobsTopic, p, s))
		}
	}
	return topics
}

// Tombstone is what a fenced key holds: a job whose record intake never stored. Every read
// of it is "no such job".
var Tombstone = []byte(`{"never_accepted":true}`)

// JobKey is the state key of a job's record.
func JobKey(jobID string) string { return "job:" + jobID }

// FileChunkKey is the state key of one chunk of an uploaded file.
func FileChunkKey(fileKey string, index int) string { return fmt.Sprintf("%s:%d", fileKey, index) }

// DeadLettersKey is the state key of a tenant's dead-lettered job ids.
func DeadLettersKey(tenant string) string { return "dead-letters:" + tenant }

// LimitSlotKey is one of a model profile's shared concurrency slots.
func LimitSlotKey(profile string, index int) string {
	return fmt.Sprintf("limit:%s:slot:%d", profile, index)
}

// RateWindowKey is a model profile's request and token count for one minute.
func RateWindowKey(profile string, minute int64) string {
	return fmt.Sprintf("limit:%s:rate:%d", profile, minute)
}
