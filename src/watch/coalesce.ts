import { Operation } from "./model.js";

/**
 * A fold state that is not a wire operation: the resource was deleted and created again (or
 * created again while it existed) while its events were pending. It is delivered as CREATE, but
 * unlike a plain CREATE a later DELETE does not cancel it: the watcher knew the old resource, so
 * it must still learn that it is gone.
 */
export const RECREATED = -1;

const { CREATE, UPDATE, DELETE, UPDATE_STATUS } = Operation;

/**
 * One event standing for two pending events of the same resource, for a watcher that fell
 * behind. Events are thin notifications (the watcher refetches the resource), so only the net
 * change matters: CREATE then updates stays CREATE; anything then DELETE is DELETE, except that
 * CREATE…DELETE is nothing at all (`undefined`); UPDATE and UPDATE_STATUS merge into UPDATE, two
 * UPDATE_STATUS stay UPDATE_STATUS; DELETE then CREATE is a re-creation (RECREATED, delivered as
 * CREATE), DELETE then an update is UPDATE.
 *
 * `pending` is an operation number or a state this function returned (fold a run of operations
 * left to right); `next` is an operation number. Outside that domain the later operation wins.
 * Deliver the result through `deliveredOperation`.
 */
export function coalesce(pending: number, next: number): number | undefined {
  switch (next) {
    case CREATE:
      // A CREATE after events of a resource that existed replaces what the watcher knew.
      return pending === CREATE ? CREATE : RECREATED;
    case DELETE:
      return pending === CREATE ? undefined : DELETE;
    case UPDATE:
    case UPDATE_STATUS:
      switch (pending) {
        case CREATE:
        case RECREATED:
          return pending;
        case UPDATE_STATUS:
          return next;
        case UPDATE:
        case DELETE:
          return UPDATE;
      }
      return next;
  }
  return next;
}

/** The operation a watcher receives for a state returned by `coalesce`. */
export function deliveredOperation(state: number): number {
  return state === RECREATED ? CREATE : state;
}
