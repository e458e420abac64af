// How the message list names days (its date separators) and membership
// changes (its "joined / left" lines).
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { MemberRole, MembershipChange, MembershipEventSchema } from "../src/gen/chat/v1/chat_pb.js";
import { dayKey, dayLabel, membershipLine } from "../app/format.js";
import { store } from "../app/state.js";

describe("date separators", () => {
  const now = new Date(2026, 11, 4, 10, 30).getTime();
  it("say Today, Yesterday, else the date", () => {
    expect(dayLabel(new Date(2026, 11, 4, 0, 1).getTime(), now)).toBe("Today");
    expect(dayLabel(BigInt(new Date(2026, 11, 3, 23, 59).getTime()), now)).toBe("Yesterday");
    expect(dayLabel(new Date(2026, 10, 30, 12).getTime(), now)).toBe("Mon, 30 Nov 2026");
    expect(dayLabel(new Date(2025, 11, 4, 12).getTime(), now)).toBe("Thu, 4 Dec 2025");
  });
  it("change at local midnight, across a month and a year", () => {
    expect(dayKey(new Date(2026, 11, 4, 23, 59).getTime())).toBe("2026-12-04");
    expect(dayKey(new Date(2026, 11, 5, 0, 0).getTime())).toBe("2026-12-05");
    expect(dayLabel(new Date(2025, 11, 31, 22).getTime(), new Date(2026, 0, 1, 8).getTime())).toBe("Yesterday");
  });
});

describe("membership lines", () => {
  store.names.set("ann", "Ann Advocate");
  store.names.set("ben", "Ben Client");
  const ev = (change: MembershipChange, by = "", role = MemberRole.UNSPECIFIED) =>
    create(MembershipEventSchema, { conversationId: 1n, userId: "ben", change, by, role });
  it("name who did what to whom", () => {
    expect(membershipLine(ev(MembershipChange.ADDED, "ann"))).toBe("Ann Advocate added Ben Client");
    expect(membershipLine(ev(MembershipChange.ADDED))).toBe("Ben Client was added");
    expect(membershipLine(ev(MembershipChange.JOINED, "ben"))).toBe("Ben Client joined");
    expect(membershipLine(ev(MembershipChange.LEFT, "ben"))).toBe("Ben Client left");
    expect(membershipLine(ev(MembershipChange.REMOVED, "ann"))).toBe("Ann Advocate removed Ben Client");
    expect(membershipLine(ev(MembershipChange.ROLE, "ann", MemberRole.ADMIN))).toBe("Ann Advocate made Ben Client an admin");
    expect(membershipLine(ev(MembershipChange.ROLE, "ann", MemberRole.MODERATOR))).toBe("Ann Advocate made Ben Client a moderator");
    expect(membershipLine(ev(MembershipChange.ROLE, "ann", MemberRole.MEMBER))).toBe("Ann Advocate made Ben Client a member");
  });
  it("say nothing for a change they do not know", () => {
    expect(membershipLine(ev(MembershipChange.UNSPECIFIED))).toBeUndefined();
    expect(membershipLine(ev(99 as MembershipChange))).toBeUndefined();
  });
});

describe("the tab title", () => {
  it("counts unread messages", async () => {
    const { titleFor } = await import("../app/attention.js");
    expect(titleFor(0n)).toBe("chatd");
    expect(titleFor(3n)).toBe("(3) chatd");
  });
});
