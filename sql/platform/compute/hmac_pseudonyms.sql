-- Keyed pseudonyms (HMAC-SHA256, RFC 2104) of the text column v of `vals`, one per row in row
-- order i, null where v is null; each distinct value is hashed once. Run by the in-memory
-- DuckDB of flywheel_assets.platform.arrow_compute, never against the warehouse. $1 and $2 are
-- the key padded to the block and XORed with ipad and opad (pseudonym.Pseudonymiser); the
-- result equals hmac.digest(key, v, 'sha256').hex()[:32] after "u_" (tested).
WITH distinct_values AS (
    SELECT DISTINCT v FROM vals WHERE v IS NOT NULL
),
hashed AS (
    SELECT v, 'u_' || left(sha256($2::BLOB || unhex(sha256($1::BLOB || encode(v)))), 32) AS p
    FROM distinct_values
)
SELECT hashed.p
FROM vals
LEFT JOIN hashed USING (v)
ORDER BY vals.i
