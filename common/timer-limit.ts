/** The longest delay a Node timer takes: past it, setTimeout fires at once (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
