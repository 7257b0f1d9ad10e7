-- Counters edge-mtp needs from an energy trace, one row per sample: ts (ns, trace clock = BOOTTIME),
-- name, value. Run on the host:
--   trace_processor_shell -q profiling/android/energy_counters.sql X.perfetto-trace > counters.csv
-- batt.*: battery counters; power.*: ODPM rails (cumulative uWs); cpufreq.cpuN: kHz; *Temperature*:
-- thermal zones (ftrace thermal_temperature).
SELECT c.ts AS ts, t.name AS name, c.value AS value
FROM counter AS c
JOIN counter_track AS t ON c.track_id = t.id
WHERE t.name GLOB 'batt.*' OR t.name GLOB 'power.*' OR t.name LIKE '%temperature%'
UNION ALL
SELECT c.ts AS ts, 'cpufreq.cpu' || t.cpu AS name, c.value AS value
FROM counter AS c
JOIN cpu_counter_track AS t ON c.track_id = t.id
WHERE t.name = 'cpufreq'
ORDER BY name, ts;
