-- Feedings v2: how a feeding was given (method) and for how long (duration_s); the amount
-- becomes optional for breast methods only, so every v1 row and body keeps its meaning.
-- Breast milk gets kinds of its own. Users choose the unit the UI shows volumes in (the API
-- is always in ml).
ALTER TABLE feedings
    ADD COLUMN method text
        CHECK (method IN ('breast_left', 'breast_right', 'breast_both', 'bottle', 'parent_fed',
                          'self_fed', 'tube')),
    ADD COLUMN duration_s integer CHECK (duration_s BETWEEN 0 AND 21600),
    ALTER COLUMN amount_ml DROP NOT NULL,
    ADD CONSTRAINT feedings_amount_required
        CHECK (amount_ml IS NOT NULL
               OR (method IS NOT NULL AND method IN ('breast_left', 'breast_right', 'breast_both')));

ALTER TABLE feedings DROP CONSTRAINT feedings_kind_check;
ALTER TABLE feedings ADD CONSTRAINT feedings_kind_check
    CHECK (kind IN ('formula', 'milk', 'water', 'food', 'medication', 'other', 'breast_milk',
                    'fortified_breast_milk'));

ALTER TABLE users ADD COLUMN volume_unit text NOT NULL DEFAULT 'ml'
    CHECK (volume_unit IN ('ml', 'oz'));
