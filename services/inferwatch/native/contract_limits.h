/* contract_limits.h: the event contract's limits for the C modules.
 *
 * GENERATED from services/inferwatch/contract/limits.py by `make schemas`
 * (python -m inferwatch.contract.header_gen). Do not edit: change limits.py and regenerate;
 * tests/contract/test_limits_header.py fails while this file is stale.
 */
#ifndef INFERWATCH_CONTRACT_LIMITS_H
#define INFERWATCH_CONTRACT_LIMITS_H

#define IW_NAME_MAX 128
#define IW_VERSION_MAX 64
#define IW_EVENT_ID_MAX 64
#define IW_PREDICTION_ID_MAX 128
#define IW_SHORT_TEXT_MAX 256
#define IW_ERROR_MAX 4096
#define IW_MAX_INPUTS 2000
#define IW_MAX_SEGMENT 32
#define IW_MAX_TAGS 64
#define IW_MAX_PROBABILITIES 1000
#define IW_TS_MIN_MS 0
#define IW_TS_MAX_MS 32503680000000LL

/* 1 for the bytes of a name ([A-Za-z0-9_.:/@+-]), 0 for every other byte:
 * `static const unsigned char table[256] = IW_NAME_CHARS_INIT;` */
#define IW_NAME_CHARS_INIT { \
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, \
    0,0,0,0,0,0,0,0,0,0,0,1,0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0, \
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,1, \
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0, \
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, \
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, \
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, \
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0 \
}

#endif
