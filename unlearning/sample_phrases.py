"""The phrasings and vocabulary the sample tickets are written from (data, not code).

Kept apart from ``sample_data`` so the generator reads as code. Changing a line here
changes every generated dataset, and with it the demo's and the benchmarks' numbers.
"""

# "[section]" headers, then "key: value | value". Train text draws on [shared] + [train],
# test text on [shared] + [test]: the held-out phrasings, which never occur in train text.
TEMPLATE_TEXT = """
[train]
billing: I was charged twice for order {order}, {amount} each time. Please refund the duplicate.
billing: My card ending {last4} was billed {amount} on {date} but I never placed that order.
billing: Why does my invoice for the {plan} plan show {amount} instead of the price I signed up for?
billing: Can you send me a copy of the invoice for order {order}? I need it for my expenses.
billing: The payment for the {product} failed at checkout but the money left my account anyway.
billing: I cancelled my {plan} subscription on {date} and was still charged {amount} this month.
billing: There is a charge of {amount} on my statement that I do not recognise.
billing: Please update the billing address on account {customer} to {city} before the next invoice.
billing: The discount code was not applied to order {order} and I paid {amount} too much.
billing: How do I switch my {plan} plan from monthly billing to yearly billing?
technical: The app crashes every time I open it on my {device} after the latest update.
technical: I keep getting error {error} when I try to log in from {browser}.
technical: My {product} will not pair with my {device}, the light just keeps blinking.
technical: The website shows error {error} at checkout and the page never finishes loading.
technical: Since {date} the {product} disconnects from the wifi every few minutes.
technical: Notifications stopped working on my {device} even though they are enabled in settings.
technical: The firmware update for my {product} failed halfway with error {error}.
technical: Sync between my {device} and the web dashboard has been broken for {days} days.
technical: The search page is extremely slow in {browser} and sometimes freezes completely.
technical: My {product} battery drains in two hours after the update, is this a known bug?
account: I forgot my password and the reset email never arrives at {email}.
account: Please change the email on my account from {email} to my new work address.
account: My account {customer} is locked after too many login attempts, can you unlock it?
account: I want to delete my account and all my personal data, my email is {email}.
account: How do I turn on two factor authentication for my account {customer}?
account: Someone else logged into my account from {city}, I think it was hacked.
account: I cannot update my phone number in the account settings, the save button does nothing.
account: Please merge my two accounts, both are registered under the name {name}.
account: The verification code for my account never reaches my phone.
account: I would like to change the username on account {customer} to my real name {name}.
shipping: My order {order} was supposed to arrive on {date} but it still has not shown up.
shipping: The tracking for order {order} has not updated in {days} days, where is my package?
shipping: {carrier} says my package was delivered but there is nothing at my door in {city}.
shipping: Can I change the delivery address for order {order} to my office in {city}?
shipping: How long does shipping to {city} usually take with {carrier}?
shipping: My package with the {product} is stuck at the {carrier} depot since {date}.
shipping: Is express delivery available for order {order}? I need the {product} by {date}.
shipping: The courier left my package with a neighbour without asking, order {order}.
shipping: Only part of order {order} arrived, the {product} is missing from the box.
shipping: I paid for express shipping but order {order} came by standard post after {days} days.
returns: I would like to return the {product} from order {order}, it does not fit.
returns: The {product} arrived damaged, can I get a replacement or a refund?
returns: How do I print a return label for order {order}?
returns: I sent the {product} back on {date} but I have not received my refund yet.
returns: Can I exchange the {product} for a different size or colour?
returns: The {product} I received is not what I ordered, I want to send it back.
returns: Is it too late to return order {order}? I bought it {days} days ago.
returns: I returned the {product} with {carrier} and the refund of {amount} is still missing.
returns: The {product} stopped working after one week, I want to return it under warranty.
returns: Please arrange a pickup for the return of order {order} from my address in {city}.
feedback: Just wanted to say the agent who helped me with order {order} was fantastic.
feedback: The new app design on my {device} is confusing, I liked the old layout better.
feedback: Please add a dark mode to the website, it would make reading at night easier.
feedback: I love the {product}, best purchase I have made this year.
feedback: Your delivery times have gotten much better, thanks to the whole team.
feedback: It would be great if the {product} came in more colours.
feedback: The checkout process has too many steps, please make it simpler.
feedback: I have been a customer since {date} and the quality has really dropped lately.
feedback: Suggestion: add a wishlist so I can save products for later.
feedback: The {product} is good value but the instructions could be much clearer.
[test]
billing: Bank statement lists {amount} from you twice after one purchase; reverse one debit please.
billing: Your receipt for {order} totals {amount}, yet the site listed it cheaper. Credit the gap?
billing: My bank flagged a transaction of {amount} on {date}; I did not authorise it.
billing: Requesting a VAT receipt for my {plan} membership, paid with the card ending {last4}.
technical: Whenever I launch your software on the {device}, it freezes and then shows code {error}.
technical: Installing the newest version in {browser} gives a blank white screen.
technical: Bluetooth keeps dropping between the {product} and my {device}; rebooting does not help.
technical: The display on the {product} flickers and goes black after a few seconds of use.
account: Signing in fails because the site says no user exists for {email}, though I registered.
account: Kindly close my profile {customer} for good and confirm once it is removed.
account: A sign-in alert came from {city} at night; that was not me, please secure my profile.
account: My member profile still shows my old surname, it should read {name} now.
shipping: Parcel {order} has been sitting in transit with {carrier} for {days} days now.
shipping: Nobody rang the bell, yet {carrier} marked my parcel as handed over on {date}.
shipping: Could the courier bring {order} to a pickup point in {city} instead of my home?
shipping: Still waiting on the {product}; the estimated arrival passed {days} days ago.
returns: Sending the {product} back: which address should the box go to, and who pays postage?
returns: Wrong item in {order}; I got something else entirely and would like to swap it.
returns: The {product} came with a cracked case, I want my money back once you collect it.
returns: The drop-off receipt for the {product} I posted back is attached; when is the credit due?
feedback: Compliments to your staff in {city}, they went above and beyond for me today.
feedback: Honestly the {product} exceeded my expectations; I will recommend you to friends.
feedback: An idea for the next release: allow exporting my purchase history as a spreadsheet.
feedback: Disappointed with how the {device} version looks now, the previous one felt cleaner.
"""

VOCAB_TEXT = """
[shared]
first: Anna | Ben | Carla | David | Elif | Farid | Grace | Hugo | Ines | Jonas | Keiko | Liam
first: Maya | Noah | Olga | Pedro | Quinn | Rosa | Sven | Tara | Umar | Vera | Wen | Yusuf | Zoe
last: Novak | Smith | Okafor | Garcia | Kowalski | Nguyen | Schmidt | Rossi | Haddad | Larsen
last: Patel | Brown | Moreau | Tanaka | Silva | Jensen | Murphy | Cohen | Dubois | Ivanova
domain: example.com | example.org | example.net | mail.example | inbox.test
plan: Basic | Plus | Premium | Family | Business
browser: Chrome | Firefox | Safari | Edge
opener: Hi, | Hello, | Hi team, | Hello support, | Hey, | Good morning,
closer: Thanks. | Thank you! | Regards, {name} | Thanks, {first} | Customer number {customer}.
[train]
city: Lisbon | Leeds | Austin | Lyon | Krakow | Osaka | Denver | Porto | Hamburg | Dublin
product: wireless earbuds | smart watch | air fryer | robot vacuum | coffee grinder | desk lamp
product: yoga mat | running shoes | winter jacket | laptop stand | baby monitor | blender
device: iPhone 13 | Pixel 7 | Galaxy S22 | iPad | MacBook | Windows laptop
carrier: DHL | UPS | FedEx | Royal Mail
error: 503 | E42 | 0x80070005 | AUTH-401 | TIMEOUT-7
opener: Dear customer service, | Quick question: | Urgent: | Hi, this is {first}.
closer: Please help. | Cheers, {first} | Best, {name} ({email})
[test]
city: Valencia | Ottawa | Gdansk | Tallinn | Nairobi
product: electric kettle | hiking backpack | standing fan | sewing machine | e-reader
device: OnePlus tablet | Chromebook | Xperia phone
carrier: GLS | Hermes | PostNL
error: ZX-918 | 0xC004F074
opener: Greetings, | Good afternoon, | To whom it may concern,
closer: Much appreciated, {first} | Kind regards, {name} | Sent from my phone
"""
