"""Rules and evaluation: rule files (parse, compile, hot reload), the condition language, and the engine that turns metric snapshots into findings."""
