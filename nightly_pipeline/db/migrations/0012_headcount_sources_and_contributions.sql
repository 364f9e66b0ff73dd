-- A headcount says where it came from: 'structured' (the site's JSON-LD numberOfEmployees),
-- 'stated' (the site's own words, "a team of 42"), 'vendor' (a data vendor) or 'inferred' (a
-- model's reading). An inferred headcount is only ever a range (employees_min..employees_max,
-- employees_max NULL for an open top range): a model's guess is never stored as an exact number.
ALTER TABLE companies
    ADD COLUMN employees_source text CHECK (employees_source IN ('structured', 'stated', 'vendor', 'inferred')),
    ADD COLUMN employees_min    int CHECK (employees_min >= 0),
    ADD COLUMN employees_max    int CHECK (employees_max >= employees_min),
    ADD CONSTRAINT companies_inferred_headcount_is_a_range
        CHECK (employees_source IS DISTINCT FROM 'inferred' OR employees_estimate IS NULL);

-- Earlier nights stored one number without saying where it came from: the deterministic extraction
-- read it from JSON-LD; every other extraction source was a model.
UPDATE companies SET employees_source = 'structured', employees_min = employees_estimate,
                     employees_max = employees_estimate
WHERE employees_estimate IS NOT NULL
  AND field_provenance -> 'employees_estimate' ->> 'source' = 'deterministic';

UPDATE companies SET employees_source = 'inferred',
                     employees_min = CASE WHEN employees_estimate <= 10 THEN 1
                                          WHEN employees_estimate <= 50 THEN 11
                                          WHEN employees_estimate <= 200 THEN 51
                                          WHEN employees_estimate <= 500 THEN 201
                                          WHEN employees_estimate <= 1000 THEN 501
                                          WHEN employees_estimate <= 5000 THEN 1001
                                          WHEN employees_estimate <= 10000 THEN 5001
                                          ELSE 10001 END,
                     employees_max = CASE WHEN employees_estimate <= 10 THEN 10
                                          WHEN employees_estimate <= 50 THEN 50
                                          WHEN employees_estimate <= 200 THEN 200
                                          WHEN employees_estimate <= 500 THEN 500
                                          WHEN employees_estimate <= 1000 THEN 1000
                                          WHEN employees_estimate <= 5000 THEN 5000
                                          WHEN employees_estimate <= 10000 THEN 10000 END,
                     employees_estimate = NULL
WHERE employees_estimate IS NOT NULL AND employees_source IS NULL;

-- Every applicable feature's signed share of the score, with the words for it, so the shortlist
-- page can chart what raised and lowered each score as it was computed that night.
ALTER TABLE lead_scores ADD COLUMN contributions jsonb NOT NULL DEFAULT '[]'::jsonb;
