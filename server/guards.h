/* guards: what runs between the router and a handler, chosen by the route's flags. */
#ifndef PULSE_GUARDS_H
#define PULSE_GUARDS_H

enum route_flag {
    /* /metrics and /api/v1/health/scaling: Bearer PULSE_METRICS_TOKEN when configured */
    ROUTE_METRICS_TOKEN = 1u << 0,
};

#endif
