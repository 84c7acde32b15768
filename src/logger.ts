import { type Logger, pino } from "pino";

/** The one structured logger (JSON lines on stdout). */
export function createLogger(level: string): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
}
