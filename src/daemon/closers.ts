/**
 * What the daemon opened, in the order it opened it, so that one list is unwound in
 * reverse both when a later step of the start fails and at stop: a socket, a child
 * process or a timer left behind would keep a failed daemon alive (and systemd's
 * Restart=on-failure would never see it fail).
 */
export class Closers {
  private readonly stack: Array<{ what: string; close: () => unknown }> = [];

  /** Remember how to undo what was just opened. */
  add(what: string, close: () => unknown): void {
    this.stack.push({ what, close });
  }

  /** Run `open`; if it throws, unwind what was opened so far and rethrow. */
  async step<T>(open: () => Promise<T>): Promise<T> {
    try {
      return await open();
    } catch (err) {
      await this.closeAll();
      throw err;
    }
  }

  /** Close everything, last opened first; a failure to close one does not stop the others. Returns what failed. */
  async closeAll(): Promise<Array<{ what: string; err: unknown }>> {
    const failed: Array<{ what: string; err: unknown }> = [];
    for (let closer = this.stack.pop(); closer; closer = this.stack.pop()) {
      try {
        await closer.close();
      } catch (err) {
        failed.push({ what: closer.what, err });
      }
    }
    return failed;
  }
}
