/**
 * Exercises in the spirit of OSTEP's homework scripts: small stated
 * parameters, a seed for every random thing, and a way to reveal the
 * answer. {@linkcode translationExercise} asks for translations (OSTEP's
 * `paging-multilevel-translate.py`, and the same on x86 formats);
 * {@linkcode faultExercise} asks which entry faults and with which #PF error
 * code. Both return an {@linkcode Exercise} with a problem sheet (Jupyter
 * and REPL display), `check(answers)`, `reveal(n)` and `answers()`.
 *
 * @example
 * ```ts
 * import { translationExercise } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const ex = translationExercise({ seed: 3, questions: 3 });
 * const r = ex.check(["0x1abc", "fault at PDE", { fault: "page-fault", level: 1 }]);
 * assert.equal(r.verdicts.length, 3);
 * assert.equal(ex.check(ex.answers().strings).correct, 3);
 * ```
 *
 * @module
 */

export {
  AnswerKey,
  type AnswerKeyEntry,
  type Answers,
  CheckResult,
  Exercise,
  type ExerciseQuestion,
  type ExpectedAnswer,
  type Mistake,
  type QuestionAccess,
  type Verdict,
} from "./exercise.ts";
export {
  MAX_QUESTIONS,
  translationExercise,
  type TranslationExerciseOptions,
} from "./translate.ts";
export {
  FAULT_SCENARIOS,
  faultExercise,
  type FaultExerciseOptions,
  type FaultScenario,
} from "./fault.ts";
export {
  type AddressAnswer,
  type AnswerInput,
  describeAnswer,
  errorCodeFlags,
  type ErrorCodeInput,
  type FaultAnswer,
  parseAnswer,
  type ParsedAnswer,
} from "./answer.ts";
export type {
  DumpEntry,
  DumpPage,
  ExerciseSheet,
  SheetParameter,
  SheetQuestion,
} from "./sheet.ts";
