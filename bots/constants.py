"""Redis key prefixes of the bots package, kept in one place as arq keeps its own."""

from __future__ import annotations

PIPELINE_PREFIX = "tierbot:{pipeline}:"
"""Queue, per-chat state and outbox. The braces are a Redis Cluster hash tag, so every key the
enqueue and chat scripts touch shares one slot. Under the prefix:

- `stream`: the inbound Redis Stream, read by the consumer group `CONSUMER_GROUP`;
- `dead`: the dead-letter stream; `dropped`: count of pending entries found deleted;
- `dedupe:<dedupe_key>`: the platform delivery was enqueued (value: its entry id);
- `chat:<chat_id>` (hash): `next` (last sequence given out), `done` (last finished) and
  `p:<seq>` (entries parked until the chat's lock holder takes them);
- `chat:<chat_id>:lock`: the chat's lock, holding its owner's token;
- `outbox:<dedupe_key>`: whether the answer to that message is pending or sent.
"""

CONSUMER_GROUP = "workers"
"""The one consumer group of the inbound stream."""

HISTORY_PREFIX = "tierbot:history:"
"""Chat history: `<prefix><chat_id>` is a list of JSON turns, oldest first."""

RATE_PREFIX = "tierbot:rate:"
"""Per-user rate limit: `<prefix><user_id>` is a sorted set of recent hits."""

SPEND_PREFIX = "tierbot:spend:"
"""Per-user daily spend: `<prefix><user_id>:<YYYY-MM-DD>` holds the day's USD, expiring after it."""

STOP_PREFIX = "tierbot:stop:"
"""Stop presses: `<prefix><chat_id>` exists while the chat's streaming answer must stop."""

LEDGER_PREFIX = "tierbot:ledger:"
"""Per-chat bookkeeping of the pipeline: `<prefix><chat_id>:retries` (retries of the current
question) and `<prefix><chat_id>:m:<platform message id>` (the turn that message shows)."""
