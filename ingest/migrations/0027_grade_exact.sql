-- GB 18218-2018 graded exactly (owner: ingest.ledger_sync).
-- A unit with S < 1 is not a major hazard source (重大危险源): it stays in the ledger, monitored,
-- with no grade (NULL), and lends no grade to alarm priority, escalation or risk.
ALTER TABLE hazard_sources
    ALTER COLUMN grade DROP NOT NULL,
    ADD COLUMN grade_terms text NOT NULL DEFAULT '';  -- R's sum as written: α × (β×q/Q + …)

-- The grade history is the journal of the ledger's grades: each row says from which grade it
-- came (from_grade; NULL with from_major false: from non-major; the first row: from_major NULL),
-- why, and who (the ledger sync, or this migration).
ALTER TABLE hazard_source_grades
    ALTER COLUMN grade DROP NOT NULL,
    ADD CONSTRAINT hazard_source_grades_grade CHECK (grade BETWEEN 1 AND 4),
    ADD COLUMN from_grade smallint CHECK (from_grade BETWEEN 1 AND 4),
    ADD COLUMN from_major boolean,
    ADD COLUMN reason text NOT NULL DEFAULT '',
    ADD COLUMN actor text NOT NULL DEFAULT 'ledger';

-- Regrade what is stored. S and R were kept as binary doubles: read back to 9 decimals they are
-- the decimals of the paper sum (S = 0.9999999999999999 is 1), then compared exactly. The next
-- ledger sync recomputes every source from its chemicals (表1–表5, flammable liquids by their
-- condition) and journals any further change with its reason.
WITH regraded AS (
    SELECT id, s, r, grade AS old_grade,
           CASE WHEN round(s::numeric, 9) < 1 THEN NULL
                WHEN round(r::numeric, 9) >= 100 THEN 1
                WHEN round(r::numeric, 9) >= 50 THEN 2
                WHEN round(r::numeric, 9) >= 10 THEN 3
                ELSE 4 END AS new_grade
    FROM hazard_sources
), journaled AS (
    INSERT INTO hazard_source_grades (hazard_source_id, s, r, grade, from_grade, from_major, reason, actor)
    SELECT id, s, r, new_grade, old_grade, true,
           (ARRAY['一级', '二级', '三级', '四级'])[old_grade] || ' → '
           || coalesce((ARRAY['一级', '二级', '三级', '四级'])[new_grade], '非重大危险源') || ': '
           || CASE WHEN new_grade IS NULL
                   THEN 'S = ' || trim_scale(round(s::numeric, 4)) || ' < 1 is not a major hazard source (GB 18218-2018)'
                   ELSE 'S = ' || trim_scale(round(s::numeric, 4)) || ', R = ' || trim_scale(round(r::numeric, 4))
                        || ' compared exactly with the grade limits 10/50/100 (GB 18218-2018)' END,
           'migration 0027_grade_exact'
    FROM regraded
    WHERE new_grade IS DISTINCT FROM old_grade
    RETURNING hazard_source_id, grade
)
UPDATE hazard_sources hs SET grade = j.grade, updated_at = now()
FROM journaled j WHERE hs.id = j.hazard_source_id;
