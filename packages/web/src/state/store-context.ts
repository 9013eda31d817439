import { createContext, useContext, useSyncExternalStore } from "react";
import type { SoftphoneState, SoftphoneStore } from "./store.js";

export const StoreContext = createContext<SoftphoneStore | null>(null);

export function useStore(): SoftphoneStore {
  const store = useContext(StoreContext);
  if (!store) throw new Error("useStore() outside <StoreContext.Provider>.");
  return store;
}

/** The softphone state; the component re-renders when it changes. */
export function useSoftphone(): SoftphoneState {
  const store = useStore();
  return useSyncExternalStore(store.subscribe, store.getState);
}
