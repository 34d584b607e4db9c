# Kafka targets, included by the main Makefile (`-include infra/kafka/kafka.mk`) and usable alone:
#   make -f infra/kafka/kafka.mk up
# `up` prefers Docker (infra/compose) when a Docker engine and its compose plugin answer, else
# the native broker.
# Native broker settings come from the environment: KAFKA_PORT, KAFKA_CONTROLLER_PORT,
# KAFKA_DATA_DIR, KAFKA_HEAP (see infra/kafka/README.md).

KAFKA_MK_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
KAFKA_SH     := bash $(KAFKA_MK_DIR)/kafka.sh
KAFKA_COMPOSE_FILE := $(KAFKA_MK_DIR)/../compose/docker-compose.yml
DOCKER_OK     = $(shell docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1 && echo yes)

.PHONY: kafka-jars up down kafka-status kafka-logs

kafka-jars: ## Resolve the Apache Kafka broker jars into infra/kafka/lib (Maven; once)
	@$(KAFKA_SH) jars

up: ## Start Kafka: docker compose where Docker answers, else the native broker on 127.0.0.1:9092
	@if [ -n "$(DOCKER_OK)" ]; then \
		echo "docker answers: docker compose -f $(KAFKA_COMPOSE_FILE) up -d"; \
		docker compose -f $(KAFKA_COMPOSE_FILE) up -d; \
	else \
		$(KAFKA_SH) start; \
	fi

down: ## Stop Kafka (native broker, and the compose stack where Docker answers); data is kept
	@$(KAFKA_SH) stop
	@if [ -n "$(DOCKER_OK)" ]; then docker compose -f $(KAFKA_COMPOSE_FILE) down; fi

kafka-status: ## Is the native broker running? (exit 3 when not)
	@$(KAFKA_SH) status

kafka-logs: ## Last 100 lines of the native broker log
	@$(KAFKA_SH) logs
