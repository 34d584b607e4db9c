-- Every prediction event, typed column by column (prediction.v1).
-- Inputs are split by kind: numeric (bool counts as 0/1) and categorical maps, plus the names of
-- missing (null) features. Kafka coordinates let the sink resume exactly where the table ends.
CREATE TABLE IF NOT EXISTS {database}.predictions
(
    event_id              String,
    prediction_id         String,
    ts                    DateTime64(3, 'UTC'),
    model                 LowCardinality(String),
    model_version         LowCardinality(String),
    latency_ms            Nullable(Float64),
    error                 Nullable(String),
    inputs_num            Map(LowCardinality(String), Float64),
    inputs_cat            Map(LowCardinality(String), String),
    inputs_null           Array(LowCardinality(String)),
    output_label          LowCardinality(Nullable(String)),
    output_score          Nullable(Float64),
    output_value          Nullable(Float64),
    output_probabilities  Map(LowCardinality(String), Float64),
    segment               Map(LowCardinality(String), String),
    embedding             Array(Float32),
    llm_prompt            Nullable(String),
    llm_completion        Nullable(String),
    llm_prompt_hash       Nullable(String),
    llm_completion_hash   Nullable(String),
    llm_completion_chars  Nullable(UInt32),
    llm_refusal           Nullable(Bool),
    llm_input_tokens      Nullable(UInt32),
    llm_output_tokens     Nullable(UInt32),
    llm_finish_reason     LowCardinality(Nullable(String)),
    llm_logprob_mean      Nullable(Float64),
    llm_logprob_min       Nullable(Float64),
    llm_token_logprobs    Array(Float32),
    lineage_kind          Array(LowCardinality(String)),
    lineage_model         Array(LowCardinality(String)),
    lineage_model_version Array(LowCardinality(String)),
    lineage_share         Array(Float64),
    tags                  Map(LowCardinality(String), String),
    kafka_topic           LowCardinality(String),
    kafka_partition       UInt32,
    kafka_offset          UInt64,
    inserted_at           DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (model, model_version, ts)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
-- A retried insert with the same insert_deduplication_token is dropped (embedded/one server).
SETTINGS non_replicated_deduplication_window = 10000;
