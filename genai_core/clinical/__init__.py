"""The bundled demo: a generator of synthetic clinical cases and QA splits (`synthetic`, its tables in
`tables/`) and the one-command clinical QA demo (`demo`). Nothing else in the engine depends on it."""
